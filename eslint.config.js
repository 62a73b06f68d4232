// ESLint: TypeScript (and Svelte) rules plus the folder boundaries. A file's folder says which runtime it may
// use, and imports go one way: renderer/main/preload/server/cli → common ← engine.
import boundaries from 'eslint-plugin-boundaries';
import svelte from 'eslint-plugin-svelte';
import tseslint from 'typescript-eslint';

const layers = ['engine', 'common', 'main', 'preload', 'renderer', 'server', 'cli'];

/** Which layers each layer may import. */
const allowed = {
  common: ['common'],
  engine: ['engine', 'common'],
  cli: ['cli', 'engine', 'common'],
  server: ['server', 'engine', 'common'],
  main: ['main', 'common'],
  preload: ['preload', 'common'],
  renderer: ['renderer', 'common'],
  bench: ['bench', 'engine', 'common'],
  test: [...layers, 'test', 'bench'],
};

export default tseslint.config(
  { ignores: ['node_modules/', 'out/', 'dist/', 'coverage/', 'test-artifacts/', 'resources/'] },
  ...tseslint.configs.recommended,
  // Svelte components get the same TypeScript rules and folder boundaries as .ts files
  ...svelte.configs.recommended,
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: {
      parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'] },
    },
  },
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs', '**/*.svelte'],
    plugins: { boundaries },
    settings: {
      'import/resolver': { node: { extensions: ['.ts', '.js', '.mjs', '.svelte'] } },
      'boundaries/elements': [
        ...layers.map((l) => ({ type: l, pattern: `src/${l}` })),
        { type: 'bench', pattern: 'bench' },
        { type: 'test', pattern: 'test' },
      ],
    },
    rules: {
      'boundaries/dependencies': [
        2,
        {
          default: 'disallow',
          policies: [
            ...Object.entries(allowed).map(([from, to]) => ({
              from: { element: { type: from } },
              allow: { to: { element: { types: { anyOf: to } } } },
            })),
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Only Electron's own processes may touch Electron; the engine and the contract stay pure.
    files: ['src/engine/**', 'src/common/**', 'src/cli/**', 'src/server/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'electron', message: 'Only src/main and src/preload may import electron.' },
          ],
        },
      ],
    },
  },
  {
    // The contract is shared by every side: types and pure helpers, no Node built-ins.
    files: ['src/common/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', 'fs', 'path', 'electron'] }],
    },
  },
);
