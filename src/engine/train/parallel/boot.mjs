// Entry of a training worker thread run from the TypeScript sources (the CLI, the browser-mode
// host, the tests): registers tsx in this thread, then loads the worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
