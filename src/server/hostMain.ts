/** Entry of the engine host child process: `node --import tsx src/server/hostMain.ts --workspace DIR`. */
import { runHostProcess } from './host';

runHostProcess();
