// Downloads Debian's linux-source-7.3 from trixie-backports and extracts it into the cache.
//
// The host's apt setup is left alone: a private sources list and private list/cache
// directories under $VFIO_MC_CACHE/apt are passed to apt-get with -o options, and
// `apt-get download` only fetches the .deb (nothing is installed). The mirror is the one the
// host's own apt configuration uses (or $VFIO_MC_DEBIAN_MIRROR), so no host name is baked in.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { cacheDir, SOURCE_PACKAGE, SOURCE_SUITE, sourceDir } from '../cache.ts';
import { requireTools, runSync } from '../run.ts';

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const VERSION_STAMP = '.vfio-mc-source-version';

export interface KernelSource {
  dir: string;
  /** Debian package version, e.g. 7.3.4-1~bpo13+1 */
  version: string;
}

/** The extracted source if it is already in the cache. */
export function cachedSource(): KernelSource | undefined {
  const dir = sourceDir();
  const stamp = join(dir, VERSION_STAMP);
  if (!existsSync(stamp)) return undefined;
  return { dir, version: readFileSync(stamp, 'utf8').trim() };
}

/** First Debian archive URI in the host's apt sources (deb822 .sources or one-line lists). */
export function hostDebianMirror(): string {
  const fromEnv = process.env.VFIO_MC_DEBIAN_MIRROR;
  if (fromEnv) return fromEnv.replace(/\/$/, '');
  const files = ['/etc/apt/sources.list'];
  if (existsSync('/etc/apt/sources.list.d')) {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) {
      if (f.endsWith('.sources') || f.endsWith('.list')) files.push(join('/etc/apt/sources.list.d', f));
    }
  }
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const uris = [
      ...[...text.matchAll(/^URIs:\s*(\S+)/gm)].map((m) => m[1]),
      ...[...text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)].map((m) => m[1]),
    ];
    const debian = uris.find((u) => u !== undefined && /\/debian\/?$/.test(u));
    if (debian) return debian.replace(/\/$/, '');
  }
  throw new Error(
    'no Debian mirror found in /etc/apt/sources.list{,.d}; set VFIO_MC_DEBIAN_MIRROR to a Debian archive URL',
  );
}

function aptOptions(aptDir: string): string[] {
  return [
    '-o',
    `Dir::Etc::sourcelist=${join(aptDir, 'sources.list')}`,
    '-o',
    'Dir::Etc::sourceparts=-',
    '-o',
    `Dir::State::Lists=${join(aptDir, 'lists')}`,
    '-o',
    `Dir::Cache=${join(aptDir, 'cache')}`,
    '-o',
    'Debug::NoLocking=1',
    '-o',
    `APT::Sandbox::User=${userInfo().username}`,
  ];
}

/** Candidate version of linux-source-7.3 in trixie-backports, after a private `apt-get update`. */
function resolveVersion(aptDir: string, log: (msg: string) => void): string {
  for (const d of ['lists/partial', 'cache/archives/partial'])
    mkdirSync(join(aptDir, d), { recursive: true });
  if (!existsSync(KEYRING)) throw new Error(`${KEYRING} is missing; install debian-archive-keyring`);
  const mirror = hostDebianMirror();
  writeFileSync(join(aptDir, 'sources.list'), `deb [signed-by=${KEYRING}] ${mirror} ${SOURCE_SUITE} main\n`);
  log(`apt-get update (${SOURCE_SUITE} from ${mirror}, private lists in ${aptDir})`);
  runSync('apt-get', [...aptOptions(aptDir), '-qq', 'update']);
  const show = runSync('apt-cache', [...aptOptions(aptDir), 'show', SOURCE_PACKAGE]);
  const version = /^Version:\s*(\S+)/m.exec(show)?.[1];
  if (!version) throw new Error(`apt-cache found no version of ${SOURCE_PACKAGE} in ${SOURCE_SUITE}`);
  return version;
}

/**
 * Makes sure the source tree is in the cache and returns it. Nothing is downloaded when the
 * tree is already there. The tree is extracted next to its final place and renamed, so an
 * interrupted extraction never looks complete.
 */
export function ensureSource(log: (msg: string) => void = console.log): KernelSource {
  const cached = cachedSource();
  if (cached) return cached;
  requireTools(['apt-get', 'apt-cache', 'dpkg-deb', 'tar', 'xz']);
  const root = cacheDir();
  const aptDir = join(root, 'apt');
  const downloads = join(root, 'downloads');
  mkdirSync(downloads, { recursive: true });
  const version = resolveVersion(aptDir, log);
  const deb = readdirSync(downloads).find(
    (f) =>
      f.startsWith(`${SOURCE_PACKAGE}_`) && f.includes(version.replace(/:/g, '%3a')) && f.endsWith('.deb'),
  );
  if (!deb) {
    log(`apt-get download ${SOURCE_PACKAGE}=${version} (about 170 MB)`);
    runSync('apt-get', [...aptOptions(aptDir), '-qq', 'download', `${SOURCE_PACKAGE}=${version}`], {
      cwd: downloads,
    });
  }
  const debFile = join(
    downloads,
    readdirSync(downloads).find((f) => f.startsWith(`${SOURCE_PACKAGE}_`) && f.endsWith('.deb')) ?? '',
  );
  if (!existsSync(debFile))
    throw new Error(`apt-get download left no ${SOURCE_PACKAGE} .deb in ${downloads}`);

  const staging = join(root, 'src', `.extract-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  log(`extracting ${debFile}`);
  // The .deb holds usr/src/linux-source-7.3.tar.xz; unpack only that member, then the tree.
  runSync('sh', [
    '-c',
    'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" ./usr/src/"$3".tar.xz && ' +
      'xz -dc -T2 "$2"/usr/src/"$3".tar.xz | tar -x -C "$2" && rm -rf "$2"/usr',
    'extract',
    debFile,
    staging,
    SOURCE_PACKAGE,
  ]);
  const tree = join(staging, SOURCE_PACKAGE);
  if (!existsSync(join(tree, 'Makefile')))
    throw new Error(`${debFile} did not contain ${SOURCE_PACKAGE}/Makefile`);
  writeFileSync(join(tree, VERSION_STAMP), `${version}\n`);
  const dir = sourceDir();
  rmSync(dir, { recursive: true, force: true });
  renameSync(tree, dir);
  rmSync(staging, { recursive: true, force: true });
  log(`kernel source ${version} in ${dir}`);
  return { dir, version };
}
