// Stages the transitive import closure of the requested Envoy API protos into one folder,
// so Grpc.Tools compiles them from a single root. Runs at build time from
// src/Envoy.Api.Protos; nothing it writes is committed.
//
// usage: node stage.mjs <depsDir> <commonProtosDir> <outDir> <listFile> <root.proto>...
//  - files found under <commonProtosDir> (Google.Api.CommonProtos) or google/protobuf/*
//    are imports only; everything else in the closure is staged and listed for generation;
//  - validate/validate.proto gets StringRules.ignore_empty = 26, which the bundled copy lacks.
import fs from 'node:fs';
import path from 'node:path';

const [depsDir, commonDir, outDir, listFile, ...roots] = process.argv.slice(2);
if (!roots.length) {
  console.error('usage: node stage.mjs <depsDir> <commonProtosDir> <outDir> <listFile> <root.proto>...');
  process.exit(2);
}
const searchDirs = ['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'].map((d) => path.join(depsDir, d));
const importRe = /^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm;

function locate(rel) {
  for (const dir of searchDirs) {
    const p = path.join(dir, rel);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function patchValidate(text) {
  if (/\bignore_empty\s*=\s*26\b/.test(text)) return text;
  // Insert the field at the end of `message StringRules { ... }`.
  const start = text.indexOf('message StringRules {');
  if (start < 0) throw new Error('validate.proto: StringRules not found');
  let depth = 0;
  for (let i = text.indexOf('{', start); i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) {
      return text.slice(0, i) + '    optional bool ignore_empty = 26;\n' + text.slice(i);
    }
  }
  throw new Error('validate.proto: unbalanced StringRules');
}

const staged = new Set();
const queue = [...roots];
while (queue.length) {
  const rel = queue.shift();
  if (staged.has(rel) || rel.startsWith('google/protobuf/')) continue;
  if (fs.existsSync(path.join(commonDir, rel))) continue; // from Google.Api.CommonProtos
  const src = locate(rel);
  if (!src) throw new Error(`proto not found in ${depsDir}: ${rel}`);
  let text = fs.readFileSync(src, 'utf8');
  if (rel === 'validate/validate.proto') text = patchValidate(text);
  staged.add(rel);
  const dest = path.join(outDir, rel);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  if (!fs.existsSync(dest) || fs.readFileSync(dest, 'utf8') !== text) fs.writeFileSync(dest, text);
  for (const m of text.matchAll(importRe)) queue.push(m[1]);
}
const list = [...staged].sort().join('\n') + '\n';
if (!fs.existsSync(listFile) || fs.readFileSync(listFile, 'utf8') !== list) fs.writeFileSync(listFile, list);
console.log(`staged ${staged.size} Envoy API protos into ${outDir}`);
