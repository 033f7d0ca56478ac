// ESLint over the TypeScript tree, with typescript-eslint's type-aware rules: the ones that
// catch what tests rarely do here (a promise nobody awaits, a misused async callback).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.engram/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // An async function that does not await still turns a throw into a rejection, which is
      // why several here are async (a caller's .catch must see bad input).
      '@typescript-eslint/require-await': 'off',
      // Rejections pass on what was thrown or the abort reason as it is (a shutdown's reason is
      // a string the worker recognises); wrapping it would hide it.
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Layers read one way: src/core (shared names and ids) imports nothing of engram's but the
    // error classes, and the hot path (src/queue) nothing of formation, the store or the service.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['../*', '!../errors.js'], message: 'src/core is the ground floor: it imports no other layer' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/queue/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../memory/*', '../store/*', '../api/*', '../app/*', '../llm/*', '../sdk/*', '../config/*'],
              message: 'the hot path imports only src/core, src/observability and the error classes',
            },
          ],
        },
      ],
    },
  },
  {
    // Settings are read by every process and the SDK: they name no hot-path, store or service code.
    files: ['src/config/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../queue/*', '../memory/*', '../store/*', '../api/*', '../app/*', '../sdk/*'],
              message: 'src/config imports only src/core, src/llm, src/observability and the error classes',
            },
          ],
        },
      ],
    },
  },
  {
    // Tests read JSON answers (any) and poke at internals; the type-aware checks above stay on
    // for promises, the unsafe-any family does not.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
);
