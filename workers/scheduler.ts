import { runProcess } from '../src/app/process.js';

// Cron ticks (one consolidation job per tick fleet-wide) and the consolidation worker.
await runProcess('scheduler', ['scheduler']);
