// Bundles the extension host (Node, CommonJS) and the webview front-ends (browser IIFEs).
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const production = !watch;
const common = { bundle: true, sourcemap: production ? false : 'inline', minify: production, logLevel: 'info', legalComments: 'none' };

const builds = [
  {
    ...common,
    entryPoints: ['src/extension.ts'],
    outfile: 'dist/extension.js',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['vscode', 'onnxruntime-node'],
  },
  ...['dashboard', 'panel', 'inspector', 'compare', 'whatif'].map((name) => ({
    ...common,
    entryPoints: [`webview/${name}/main.ts`],
    outfile: `dist/webview/${name}.js`,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
  })),
];

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
