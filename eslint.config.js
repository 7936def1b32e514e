// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', URLSearchParams: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setImmediate: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', performance: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
      'eqeqeq': ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // The dashboard's browser code.
    files: ['src/dashboard/**/*.{ts,tsx}'],
    languageOptions: { globals: { window: 'readonly', document: 'readonly', location: 'readonly', EventSource: 'readonly', fetch: 'readonly', HTMLCanvasElement: 'readonly', HTMLInputElement: 'readonly', MessageEvent: 'readonly' } },
  },
);
