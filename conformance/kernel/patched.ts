// A test kernel with patches applied (npm run kernel:build -- --patch FILE...), cached by the
// patches' content in $VFIO_MC_CACHE/kernel/<version>-<fragment hash>-p<patch hash>/.
//
// The patched source is a hard-linked copy of the extracted tree (`cp -al`; GNU patch writes
// a new file for each file it changes, so the shared tree stays untouched), in
// $VFIO_MC_CACHE/src-patched/<version>-p<patch hash>/.
//
// Incremental build (incremental.ts): a copy of the unpatched build of the same fragment, made
// with the patched tree bound over the source path, so only what the patches touch is
// recompiled. Without unshare (no CAP_SYS_ADMIN) it falls back to a full build from the
// patched tree.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { cacheDir, versionSlug } from '../cache.ts';
import { runSync } from '../run.ts';
import {
  type BuildOptions,
  configureBuild,
  ensureKernel,
  finishBuild,
  type KernelBuild,
  makeArgs,
  makeWithProgress,
  readStamp,
} from './build.ts';
import { canUnshare, makeIncrementally } from './incremental.ts';
import type { KernelSource } from './source.ts';

export interface PatchSet {
  readonly files: readonly { file: string; sha256: string }[];
  /** sha256 over the patches' contents in order, first 12 hex digits. */
  readonly hash: string;
}

export function patchSet(files: readonly string[]): PatchSet {
  if (files.length === 0) throw new Error('--patch wants at least one patch file');
  const all = createHash('sha256');
  const list = files.map((f) => {
    if (!existsSync(f)) throw new Error(`patch ${f} does not exist`);
    const text = readFileSync(f);
    all.update(text);
    return { file: resolve(f), sha256: createHash('sha256').update(text).digest('hex') };
  });
  return { files: list, hash: all.digest('hex').slice(0, 12) };
}

/** The source tree with the patches applied (made once per patch set). */
export function patchedSource(source: KernelSource, set: PatchSet, log: (msg: string) => void): string {
  const dir = join(cacheDir(), 'src-patched', `${versionSlug(source.version)}-p${set.hash}`);
  if (existsSync(join(dir, '.vfio-mc-patched'))) return dir;
  const staging = `${dir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, '..'), { recursive: true });
  runSync('cp', ['-al', source.dir, staging]);
  for (const p of set.files) {
    log(`applying ${basename(p.file)}`);
    try {
      runSync('patch', ['-p1', '--forward', '--batch', '--no-backup-if-mismatch', '-i', p.file], {
        cwd: staging,
      });
    } catch (e) {
      rmSync(staging, { recursive: true, force: true });
      throw new Error(`${p.file} does not apply to ${source.version}: ${(e as Error).message}`);
    }
  }
  runSync('sh', ['-c', `printf '%s\\n' "$@" > .vfio-mc-patched`, 'sh', ...set.files.map((f) => f.sha256)], {
    cwd: staging,
  });
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return dir;
}

export async function ensurePatchedKernel(
  files: readonly string[],
  opts: BuildOptions = {},
): Promise<KernelBuild> {
  const log = opts.log ?? console.log;
  const set = patchSet(files);
  // The unpatched build: the shim and the test mdev are built against its headers anyway.
  const base = await ensureKernel({ ...opts, force: false });
  const dir = `${base.dir}-p${set.hash}`;
  const cached = opts.force ? undefined : readStamp(dir);
  if (cached) {
    log(`patched kernel (${set.files.map((f) => basename(f.file)).join(', ')}) is cached: ${cached.bzImage}`);
    return cached;
  }
  const srcDir = patchedSource(base.source, set, log);
  const jobs = opts.jobs ?? 2;
  const extra = { patches: [...set.files] };
  rmSync(dir, { recursive: true, force: true });
  if (canUnshare()) {
    log(`incremental build: copy of ${base.dir}, patched tree bound over ${base.source.dir}`);
    const made = await makeIncrementally({
      base,
      dir,
      srcDir,
      jobs,
      progress: opts.progress ?? true,
    });
    // The copy's generated Makefile names the unpatched tree's path (bound over in the
    // namespace): record that source, as an out-of-tree module build must use it.
    return finishBuild({
      srcDir,
      dir,
      source: base.source,
      fragment: base.fragment,
      made,
      log,
      extra: { ...extra, incremental: true },
      headersInstalled: true,
    });
  }
  log('no private mount namespace (unshare --mount failed): full build from the patched tree');
  configureBuild(srcDir, dir, base.fragment, log);
  const made = await makeWithProgress(
    { cmd: 'make', args: makeArgs(dir, jobs), cwd: srcDir },
    base.buildLines,
    opts.progress ?? true,
  );
  return finishBuild({ srcDir, dir, source: base.source, fragment: base.fragment, made, log, extra });
}
