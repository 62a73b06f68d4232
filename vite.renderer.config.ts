// The renderer's build: `npm run build:renderer` → out/renderer (served by the browser mode, loaded
// by Electron). base './' so the same files work from file:// and from any server path.
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('./src/renderer', import.meta.url)),
  base: './',
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: fileURLToPath(new URL('./out/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // no inline data: URLs for scripts; everything is a file the CSP's 'self' allows
    assetsInlineLimit: 0,
  },
});
