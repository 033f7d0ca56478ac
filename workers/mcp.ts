#!/usr/bin/env node
import { runStdioServer } from '../src/mcp/stdio.js';

// An MCP server on stdio for desktop agents: `npm run start:mcp -- --context userId=u1`.
await runStdioServer(process.argv.slice(2));
