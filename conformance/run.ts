// Running host commands with clear errors: a missing tool names the package that provides it.
import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Debian package that provides each external tool the conformance target calls. */
const TOOL_PACKAGES: Record<string, string> = {
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  tar: 'tar',
  xz: 'xz-utils',
  make: 'make',
  gcc: 'gcc',
  flex: 'flex',
  bison: 'bison',
  bc: 'bc',
  rsync: 'rsync',
  'qemu-system-x86_64': 'qemu-system-x86',
  gcov: 'gcc',
  ctags: 'universal-ctags',
};

export class CommandError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

export function which(tool: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  return r.status === 0 && path.length > 0 ? path : undefined;
}

/** Throws an error naming every missing tool and the package to install (see conformance/setup-host.sh). */
export function requireTools(tools: string[]): void {
  const missing = tools.filter((t) => which(t) === undefined);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
    throw new Error(
      `missing host tools: ${missing.join(', ')} (Debian packages: ${pkgs.join(' ')}); run conformance/setup-host.sh`,
    );
  }
}

/** Runs a command to completion and returns stdout; throws with the command's output on failure. */
export function runSync(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  if (r.error) throw new CommandError(`${cmd} could not be started: ${r.error.message}`, '');
  if (r.status !== 0) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    throw new CommandError(
      `${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${output.slice(-4000)}`,
      output,
    );
  }
  return r.stdout;
}

/**
 * Runs a long command, handing each output line to onLine; resolves when it exits 0.
 * The last lines are kept for the error message.
 */
export function runStreaming(
  cmd: string,
  args: string[],
  onLine: (line: string) => void,
  opts: SpawnOptions = {},
): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    const tail: string[] = [];
    const feed = (stream: NodeJS.ReadableStream | null) => {
      let partial = '';
      stream?.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          tail.push(line);
          if (tail.length > 60) tail.shift();
          onLine(line);
        }
      });
    };
    feed(child.stdout);
    feed(child.stderr);
    child.on('error', (e) => reject(new CommandError(`${cmd} could not be started: ${e.message}`, '')));
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else
        reject(
          new CommandError(
            `${cmd} ${args.join(' ')} exited with ${code ?? signal}:\n${tail.join('\n')}`,
            tail.join('\n'),
          ),
        );
    });
  });
}

/** True when the module with this import.meta.url is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(fileURLToPath(moduleUrl)) === realpathSync(script);
  } catch {
    return false;
  }
}

/** Runs a CLI main: a thrown error is printed as "name: message" with exit code 1. */
export function runMain(name: string, main: () => Promise<number> | number): void {
  Promise.resolve()
    .then(main)
    .then(
      (code) => {
        process.exitCode = code;
      },
      (e: unknown) => {
        console.error(`${name}: ${e instanceof Error ? e.message : String(e)}`);
        process.exitCode = 1;
      },
    );
}
