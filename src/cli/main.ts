/**
 * gpt-studio's command line: `npm run cli -- <command> [options]`, or the `gpt-studio` bin.
 * The entry point: the program itself is ./program.ts (importable, e.g. by tests); this file only
 * sets up the process around it and exits with its code.
 */
import { runProgram } from './program';

// Stray console output from libraries must not mix into stdout (--json lines, or generated text),
// so console.log/info/debug go to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;
// A reader that goes away (`| head`) ends the program quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
process.exit(await runProgram(process.argv.slice(2)));
