/** Reading a user's JSON file (a trace, a path file): any failure is a ModelError naming the file (exit 2). */
import { readFile } from 'node:fs/promises';
import { ModelError } from './model.ts';

export async function readJsonFile(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new ModelError(`${file}: ${(e as Error).message}`);
  }
}
