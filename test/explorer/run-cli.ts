/**
 * The command line run in-process for the tests (cli.test, exit-codes.test, symmetry.test,
 * view.test): `main(args)` with standard output and error captured, and the exit code it returns.
 */
import { vi } from 'vitest';
import { main } from '../../cli/main.ts';

export async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    stdout += String(s);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    stderr += String(s);
    return true;
  });
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}
