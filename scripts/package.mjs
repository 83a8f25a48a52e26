// Builds the .vsix: `node scripts/package.mjs [--target T | --target all]` (npm run package: this machine's
// target). What goes in is .vscodeignore's list — the esbuild bundle (pure-JS packages are bundled into it),
// media, the trainer package — plus the only native module, onnxruntime-node: its JS, onnxruntime-common and
// the native binding of the one platform the .vsix is for (`vsce package --target`). Every package must then
// hold what the extension loads; this script checks that in the written .vsix and fails otherwise.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const NATIVE = 'node_modules/onnxruntime-node/bin/napi-v6';
const vsce = path.join(root, 'node_modules', '@vscode', 'vsce', 'vsce');

/** The VS Code targets onnxruntime-node ships CPU bindings for, from its bin/ folder: `linux-x64` → `linux/x64`. */
function shippedTargets() {
  const out = {};
  for (const os of fs.readdirSync(path.join(root, NATIVE)))
    for (const arch of fs.readdirSync(path.join(root, NATIVE, os))) out[`${os}-${arch}`] = `${os}/${arch}`;
  return out;
}

/** Entry names of a zip file (its central directory), without a zip library. */
function zipEntries(file) {
  const buf = fs.readFileSync(file);
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error(`${file} is not a zip file`);
  const names = [];
  for (let i = 0, p = buf.readUInt32LE(eocd + 16); i < buf.readUInt16LE(eocd + 10); i++) {
    const n = buf.readUInt16LE(p + 28), extra = buf.readUInt16LE(p + 30), comment = buf.readUInt16LE(p + 32);
    names.push(buf.toString('utf8', p + 46, p + 46 + n));
    p += 46 + n + extra + comment;
  }
  return names;
}

function check(vsix, dir) {
  const names = zipEntries(vsix).filter((n) => n.startsWith('extension/')).map((n) => n.slice('extension/'.length));
  const need = ['package.json', 'dist/extension.js', 'dist/webview/dashboard.js', 'media/grpo.svg', 'trainer/requirements.txt', 'trainer/grpo/cli.py',
    'node_modules/onnxruntime-node/package.json', 'node_modules/onnxruntime-node/dist/index.js', 'node_modules/onnxruntime-common/package.json',
    `${NATIVE}/${dir}/onnxruntime_binding.node`];
  const missing = need.filter((n) => !names.includes(n));
  const foreign = names.filter((n) => (n.startsWith(`${NATIVE}/`) && !n.startsWith(`${NATIVE}/${dir}/`))
    || n.includes('_providers_')
    || (n.startsWith('node_modules/') && !/^node_modules\/onnxruntime-(node|common)\//.test(n))
    || /(^|\/)__pycache__\/|^src\/|^test\/|^trainer\/tests\//.test(n));
  if (missing.length || foreign.length) {
    throw new Error(`${path.relative(root, vsix)}: ${missing.length ? `missing ${missing.join(', ')}` : ''}${foreign.length ? ` should not hold ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ` (+${foreign.length - 5})` : ''}` : ''}`);
  }
  return names.length;
}

const arg = process.argv.indexOf('--target');
const want = arg > 0 ? process.argv[arg + 1] : `${process.platform}-${process.arch}`;
const targets = shippedTargets();
const chosen = want === 'all' ? Object.keys(targets) : [want];
for (const t of chosen) if (!targets[t]) throw new Error(`onnxruntime-node has no binding for ${t} (it ships ${Object.keys(targets).join(', ')})`);

const base = fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8');
fs.mkdirSync(path.join(root, 'dist'), { recursive: true });
for (const t of chosen) {
  const ignore = path.join(root, 'dist', `.vscodeignore-${t}`);
  // This target's CPU binding only: not the CUDA/TensorRT providers onnxruntime-node's install script may add.
  fs.writeFileSync(ignore, `${base}\n!${NATIVE}/${targets[t]}/!(*_providers_*)\n`);
  const out = path.join(root, 'dist', `grpo-studio-${t}.vsix`);
  execFileSync(process.execPath, [vsce, 'package', '--target', t, '--ignoreFile', ignore, '--readme-path', 'docs/marketplace.md',
    '--allow-missing-repository', '--skip-license', '--out', out], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  fs.rmSync(ignore);
  const files = check(out, targets[t]);
  console.log(`${path.relative(root, out)}: ${(fs.statSync(out).size / 2 ** 20).toFixed(1)} MiB, ${files} files`);
}
