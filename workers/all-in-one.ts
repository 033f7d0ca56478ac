#!/usr/bin/env node
import { runProcess } from '../src/app/process.js';

// Everything in one process, migrations first: the default for a first run and small installs.
await runProcess('all-in-one', ['api', 'reflection', 'scheduler'], { migrate: true });
