/**
 * The deployment templates (deploy/): checked by well-kept validators, and
 * run where they can be here. The Containerfile passes dockerfile-utils'
 * linter and copies only what exists; every Kubernetes object validates
 * against its API schema (kubernetes-models; kubectl's --dry-run=client
 * needs a cluster's OpenAPI document, which this machine has none of); the
 * CI workflow passes GitHub's own workflow parser; the Slurm scripts parse
 * as bash. The swarm templates are also run: the Kubernetes Job's
 * arguments, expanded as Kubernetes does for two indices, and the Slurm
 * array job's script for two tasks, then the merge, which finds the
 * vfio-wait deadlock. Each validator is shown to reject a broken template.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
const read = (f: string) => readFileSync(join(DEPLOY, f), 'utf8');
const BIN = join(ROOT, 'bin', 'vfio-mc.js');

const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  Job,
  Deployment,
  Service,
  PersistentVolumeClaim,
};
const k8sObjects = (file: string): any[] => parseAllDocuments(read(file)).map((d) => d.toJS());

describe('Containerfile', () => {
  it("passes dockerfile-utils' linter, and copies files that exist", () => {
    const text = read('Containerfile');
    expect(lintDockerfile(text)).toEqual([]);
    const copied = text
      .split('\n')
      .filter((l) => l.startsWith('COPY '))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(copied.length).toBeGreaterThan(3);
    for (const f of copied) expect(existsSync(join(ROOT, f)), f).toBe(true);
    expect(text).toMatch(/ENTRYPOINT \["node", "\/opt\/vfio-mc\/bin\/vfio-mc.js"\]/);
  });

  it('the linter rejects a broken one', () => {
    expect(lintDockerfile('FROM node:20\nCOPYY a b\n').map((d) => d.message)).toContain(
      'Unknown instruction: COPYY',
    );
  });
});

describe('Kubernetes', () => {
  const files = readdirSync(join(DEPLOY, 'kubernetes')).map((f) => `kubernetes/${f}`);

  it.each(files)('%s: every object validates against its API schema', (file) => {
    for (const o of k8sObjects(file)) {
      const Model = MODELS[o.kind];
      expect(Model, `a ${o.kind}`).toBeDefined();
      expect(() => new Model(o).validate()).not.toThrow();
    }
  });

  it('the schema rejects a broken Job', () => {
    const [job] = k8sObjects('kubernetes/swarm-job.yaml');
    job.spec.completionMode = 'indexed';
    expect(() => new Job(job).validate()).toThrow(
      /completionMode must be equal to one of the allowed values/,
    );
  });

  it("the swarm Job's arguments, expanded as Kubernetes does for indices 0 and 1, run shards the merge Job merges", () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-k8s-'));
    const [job] = k8sObjects('kubernetes/swarm-job.yaml');
    const c = job.spec.template.spec.containers[0];
    expect(job.spec.completionMode).toBe('Indexed');
    for (const index of [0, 1]) {
      const env: Record<string, string> = {
        ...Object.fromEntries(c.env.map((e: any) => [e.name, e.value])),
        BUDGET: '1s', // the template's 10m, shortened for the test
        JOB_COMPLETION_INDEX: String(index),
      };
      // Kubernetes expands $(VAR) in args from the container's environment.
      const args = (c.args as string[]).map((a) =>
        a.replace(/\$\((\w+)\)/g, (_, v) => env[v]).replace('/reports', dir),
      );
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
    const [merge] = k8sObjects('kubernetes/merge-job.yaml');
    const m = merge.spec.template.spec.containers[0];
    const script = (m.args[0] as string).replaceAll('/reports', dir).replace('/opt/vfio-mc', ROOT);
    const r = spawnSync(m.command[0], [...m.command.slice(1), script], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/deadlock\s+violated/);
    expect(existsSync(join(dir, 'trails', 'container.vfio-wait.deadlock.trail.json'))).toBe(true);
  });

  it("the distributed Job's node script parses as sh", () => {
    const [, , job] = k8sObjects('kubernetes/distributed.yaml');
    const r = spawnSync('sh', ['-n', '-c', job.spec.template.spec.containers[0].args[0]], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
  });
});

describe('CI matrix', () => {
  const parse = (content: string): string[] => {
    const script = join(import.meta.dirname, 'workflow-errors.ts');
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { input: content, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  it("passes GitHub's workflow parser", () => {
    expect(parse(read('ci/github-actions.yml'))).toEqual([]);
  });

  it('the parser rejects a broken workflow', () => {
    const broken = read('ci/github-actions.yml').replace('runs-on: ubuntu-latest', 'runs_on: ubuntu-latest');
    expect(parse(broken).join('\n')).toMatch(/runs_on/);
  });
});

describe('Slurm', () => {
  it.each(['slurm/swarm.sbatch', 'slurm/merge.sbatch', 'slurm/distributed.sbatch'])(
    '%s parses as bash',
    (f) => {
      const r = spawnSync('bash', ['-n', join(DEPLOY, f)], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(read(f)).toMatch(/^#SBATCH --job-name=/m);
    },
  );

  it('the array job, run as Slurm runs tasks 0 and 1 of 2, then the merge job: the vfio-wait deadlock', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mc-slurm-'));
    mkdirSync(join(dir, 'reports'));
    const env = { ...process.env, SLURM_SUBMIT_DIR: ROOT, SLURM_ARRAY_TASK_COUNT: '2', BUDGET: '1s' };
    for (const task of ['0', '1']) {
      const r = spawnSync('bash', [join(DEPLOY, 'slurm/swarm.sbatch')], {
        cwd: dir,
        env: { ...env, SLURM_ARRAY_TASK_ID: task },
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
    }
    const r = spawnSync('bash', [join(DEPLOY, 'slurm/merge.sbatch')], { cwd: dir, env, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/swarm of 2 of 2 shards/);
    expect(r.stdout).toMatch(/deadlock\s+violated/);
  });
});
