/**
 * Prints, as JSON, the errors GitHub's workflow parser finds in the workflow on standard input.
 * A separate process (run with tsx): the parser imports JSON without an import attribute, which
 * node 20 refuses outside a loader that handles it (templates.test.ts runs this).
 */
import { readFileSync } from 'node:fs';
import { NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser';

const content = readFileSync(0, 'utf8');
const r = parseWorkflow({ name: 'swarm.yml', content }, new NoOperationTraceWriter());
process.stdout.write(JSON.stringify(r.context.errors.getErrors().map((e) => e.message)));
