// Where the conformance target keeps what it downloads and builds.
//
//   $VFIO_MC_CACHE (default ~/.cache/vfio-mc)
//     src/linux-source-7.3/            extracted kernel source (read by the model authors too)
//       .vfio-mc-source-version        Debian package version the tree came from
//     apt/                             private apt lists for trixie-backports (system apt untouched)
//     downloads/                       the linux-source .deb
//     kernel/<version>-<fraghash>/     O= build dir: .config, bzImage, hdr/ (headers_install)
//     shim/<version>-<shimhash>/       static vfio-mc-shim built against that hdr/
//     selftests/<version>-<hash>/      static tools/testing/selftests/iommu binaries
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SOURCE_PACKAGE = 'linux-source-7.3';
export const SOURCE_SUITE = 'trixie-backports';

/** The repository's conformance/ directory. */
export const conformanceDir = dirname(fileURLToPath(import.meta.url));
export const defaultFragment = join(conformanceDir, 'kernel', 'vfio-mc.config');

export function cacheDir(): string {
  const fromEnv = process.env.VFIO_MC_CACHE;
  return resolve(fromEnv && fromEnv.length > 0 ? fromEnv : join(homedir(), '.cache', 'vfio-mc'));
}

export function sourceDir(): string {
  return join(cacheDir(), 'src', SOURCE_PACKAGE);
}

/** A Debian version such as 7.3.4-1~bpo13+1 made safe for a directory name. */
export function versionSlug(version: string): string {
  return version.replace(/[^A-Za-z0-9.+-]/g, '_');
}

export function hashFiles(paths: string[]): string {
  const h = createHash('sha256');
  for (const p of paths) {
    h.update(p.split('/').pop() ?? p);
    h.update('\0');
    h.update(readFileSync(p));
  }
  return h.digest('hex').slice(0, 12);
}

/** The build directory is keyed by the source package version and the fragment's content. */
export function kernelBuildDir(version: string, fragment: string): string {
  const fragmentHash = createHash('sha256').update(readFileSync(fragment)).digest('hex').slice(0, 12);
  return join(cacheDir(), 'kernel', `${versionSlug(version)}-${fragmentHash}`);
}
