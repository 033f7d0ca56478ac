import { runProcess } from '../src/app/process.js';

// HTTP only: enqueue turns, search memories, Bull Board, health and metrics. Stateless.
await runProcess('api', ['api']);
