import { runProcess } from '../src/app/process.js';

// Reflection jobs; scale by adding replicas or REFLECTION_CONCURRENCY.
await runProcess('reflection', ['reflection']);
