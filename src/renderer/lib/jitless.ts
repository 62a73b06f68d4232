/**
 * Imported first (main.ts): the strict CSP forbids eval, and zod probes for it (`Function('')`,
 * a console error under the CSP) when its first object schema is built unless it is jitless.
 */
import { z } from 'zod';

z.config({ jitless: true });
