#!/usr/bin/env node
// Entry point for `npx vfio-mc`: run the TypeScript CLI through tsx, so that
// model files written in TypeScript (the user's own included) load directly.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
