/** `npm run serve`: browser mode (see server.ts). */
import { serveMain } from './server';

await serveMain(process.argv.slice(2));
