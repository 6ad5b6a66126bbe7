import { serveCommand } from './commands/serve.js';
import { simCommand } from './commands/sim.js';
import { demoCommand } from './commands/demo.js';
import { statusCommand } from './commands/status.js';
import { configCommand } from './commands/config.js';
import { auditCommand } from './commands/audit.js';
import { runProgram } from './program.js';

await runProgram(
  'tresor-attest',
  '$0 <command> [options]\n\nLocal OpenAI-compatible proxy that verifies a confidential-AI router before any byte leaves.',
  [serveCommand, simCommand, demoCommand, statusCommand, configCommand, auditCommand],
);
