// Bundles lib-jitsi-meet (and its E2EE worker) with esbuild into two
// classic scripts for the test pages. Run by rebuild.sh, which prepares the
// folders; adapted from ../shared/jitsi/lib-jitsi-meet/build.mjs.
//   node build.mjs <esbuild main.js> <lib-jitsi-meet source with node_modules> <strophe.js source> <out dir>
import { existsSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [esbuildMain, ljmSrc, stropheSrc, outDir] = process.argv.slice(2).map((p) => p && resolve(p));
if (!outDir) {
  console.error('usage: node build.mjs <esbuild/lib/main.js> <lib-jitsi-meet dir> <strophejs dir> <out dir>');
  process.exit(2);
}
const esbuild = await import(pathToFileURL(esbuildMain).href);

// lib-jitsi-meet imports "@jitsi/js-utils/<name>" (a folder in the package's
// dist/ without an exports map that esbuild follows): resolve it to
// dist/<name>/index.js of the nearest copy of the package.
const jsUtilsSubpaths = {
  name: 'js-utils-subpaths',
  setup(build) {
    build.onResolve({ filter: /^@jitsi\/js-utils\/[a-z-]+$/ }, (args) => {
      const sub = args.path.split('/')[2];
      for (let dir = args.resolveDir; ; dir = dirname(dir)) {
        const pkg = join(dir, 'node_modules', '@jitsi', 'js-utils');
        if (existsSync(pkg)) {
          const f = join(pkg, 'dist', sub, 'index.js');
          return existsSync(f) ? { path: f } : undefined;
        }
        if (dir === dirname(dir)) return undefined;
      }
    });
  },
};

const common = {
  bundle: true,
  target: 'chrome100',
  sourcemap: true,
  logLevel: 'warning',
  // The npm dependency "strophe.js" is a release tarball of Jitsi's fork that
  // the registry does not hold: the fork's source is bundled instead.
  alias: { 'strophe.js': join(stropheSrc, 'src', 'strophe.js') },
  define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
  // Node-only fallbacks of strophe.js, never used in a browser (upstream's webpack ignores them too).
  external: ['@xmldom/xmldom', 'ws'],
  plugins: [jsUtilsSubpaths],
  absWorkingDir: ljmSrc,
};
await esbuild.build({
  ...common,
  entryPoints: [join(ljmSrc, 'index.js')],
  format: 'iife',
  globalName: 'JitsiMeetJS',
  outfile: join(outDir, 'lib-jitsi-meet.min.js'),
});
await esbuild.build({
  ...common,
  entryPoints: [join(ljmSrc, 'modules', 'e2ee', 'Worker.ts')],
  format: 'iife',
  outfile: join(outDir, 'lib-jitsi-meet.e2ee-worker.js'),
});
console.log(`built ${join(outDir, 'lib-jitsi-meet.min.js')} and lib-jitsi-meet.e2ee-worker.js`);
