// The repository's own checks in scripts/: each must be able to fail.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const script = join(import.meta.dirname, '..', 'scripts', 'check-merge-markers.sh');
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A git repository with the script in scripts/ and one tracked file. */
function repo(file: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-markers-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(script, join(dir, 'scripts', 'check-merge-markers.sh'));
  writeFileSync(join(dir, 'spec.md'), file);
  const git = (...args: string[]) => spawnSync('git', args, { cwd: dir, encoding: 'utf8' });
  git('init', '-q');
  git('add', '.');
  return dir;
}

const run = (dir: string) =>
  spawnSync('bash', [join(dir, 'scripts', 'check-merge-markers.sh')], { encoding: 'utf8' });

describe('scripts/check-merge-markers.sh (npm run lint)', () => {
  it('fails on a conflict left in a tracked file, naming file and line', () => {
    const r = run(repo('# spec\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> branch\n'));
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('spec.md:2:<<<<<<< HEAD');
  });
  it('passes a file without markers (a setext heading is not one)', () => {
    const r = run(repo('Title\n=======\n\ntext\n'));
    expect(r.status).toBe(0);
  });
});
