// The desktop app's build (`npm run build` → out/main, out/preload, out/renderer, electron-vite's
// default folders; `npm start` runs
// it in development). The renderer section uses the same settings as vite.renderer.config.ts (the
// browser mode's build), so both modes load the same files.
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'electron-vite';

const at = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  main: {
    build: {
      // dependencies stay in node_modules (tfjs and its native backends load at run time)
      externalizeDeps: true,
      rollupOptions: {
        // the engine host (src/server/hostMain.ts) is a second entry, reached by ?modulePath;
        // the training worker thread is a third, found beside the bundle as trainWorker.js
        input: {
          index: at('./src/main/index.ts'),
          trainWorker: at('./src/engine/train/parallel/worker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      rollupOptions: {
        input: { index: at('./src/preload/index.ts') },
        // CommonJS, so the preload runs in the sandbox (sandboxed preloads cannot be ES modules)
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: at('./src/renderer'),
    base: './',
    plugins: [svelte({ configFile: false })],
    build: {
      emptyOutDir: true,
      target: 'es2022',
      assetsInlineLimit: 0,
      rollupOptions: { input: { index: at('./src/renderer/index.html') } },
    },
  },
});
