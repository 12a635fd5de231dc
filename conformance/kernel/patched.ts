// A test kernel with patches applied (npm run kernel:build -- --patch FILE...), cached by the
// patches' content in $VFIO_MC_CACHE/kernel/<version>-<fragment hash>-p<patch hash>/.
//
// The patched source is a hard-linked copy of the extracted tree (`cp -al`; GNU patch writes
// a new file for each file it changes, so the shared tree stays untouched), in
// $VFIO_MC_CACHE/src-patched/<version>-p<patch hash>/.
//
// Incremental build: the unpatched build of the same fragment is copied (`cp -a`, times kept)
// and make runs in a private mount namespace (unshare --mount) in which the patched tree is
// bind-mounted over the source path and the copy over the unpatched build dir, so every
// command line and dependency path is the one the unpatched build recorded and only what the
// patches touch is recompiled (then vmlinux is relinked). Without unshare (no CAP_SYS_ADMIN)
// or without an unpatched build it falls back to a full build from the patched tree.
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
import type { KernelSource } from './source.ts';

/** Lines a relink after a few changed files prints (for the progress bar). */
const INCREMENTAL_LINES = 60;

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

/** Whether this process may make a private mount namespace with bind mounts. */
export function canUnshare(): boolean {
  try {
    runSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind / /mnt']);
    return true;
  } catch {
    return false;
  }
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
    runSync('cp', ['-a', base.dir, dir]);
    rmSync(join(dir, 'vfio-mc-build.json'), { force: true });
    // make, then headers_install into the copy's hdr/ (the patches may touch uapi headers)
    const script =
      'mount --bind "$1" "$2" && mount --bind "$3" "$4" && b="$4" && shift 4 && make "$@" && ' +
      'rm -rf "$b/hdr" && make -s O="$b" headers_install INSTALL_HDR_PATH="$b/hdr"';
    const made = await makeWithProgress(
      {
        cmd: 'unshare',
        args: [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          script,
          'sh',
          srcDir,
          base.source.dir,
          dir,
          base.dir,
          ...makeArgs(base.dir, jobs),
        ],
        cwd: base.source.dir,
      },
      INCREMENTAL_LINES,
      opts.progress ?? true,
    );
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
