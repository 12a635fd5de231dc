// Node module-resolution hooks for users' model files (registered by
// model-loader.ts; they run on Node's loader thread, hence plain JavaScript).
//
// A kernel developer's model lives in their own directory, with no
// package.json and no node_modules. Two things would break there:
// - `import ... from 'xstate'` (or 'vfio-mc', 'fast-check', 'ts-pattern')
//   finds nothing, or finds another copy: a machine built with a second
//   xstate would not be the machine the explorer's xstate runs. Such imports
//   from files outside the tool resolve as if the tool itself had made them.
// - Without a package.json that says "type": "module", Node takes a .ts file
//   for CommonJS, and tsx compiles its imports to require(): requiring the
//   tool's ES modules from a module the tool is importing is a cycle Node
//   refuses. A .ts file outside the tool whose package scope does not name a
//   type is loaded as an ES module, which is what every model file is.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set by initialize(): the tool's root directory (a file: URL ending in '/') and its index.ts. */
let tool = { root: '', index: '' };

export async function initialize(data) {
  tool = data;
}

const SHARED = /^(xstate|vfio-mc|fast-check|ts-pattern)(\/.*)?$/;

const outsideTool = (url) => typeof url === 'string' && url.startsWith('file:') && !url.startsWith(tool.root);

export async function resolve(specifier, context, next) {
  if (outsideTool(context.parentURL) && SHARED.test(specifier)) {
    // The tool's own copy: resolved from the tool's index.ts (a package may import itself by name).
    return next(specifier, { ...context, parentURL: tool.index });
  }
  const resolved = await next(specifier, context);
  // tsx marks a .ts file it takes for CommonJS with queries (some percent-encoded into the path:
  // 'machine.ts%3Ftsx-commonjs-export-preparse=1?tsx-commonjs-virtual-query=1'): the file a model
  // imports (machine.ts from model.ts) came back so, was loaded with require(), and its own imports
  // (xstate) then bypassed this hook. Its plain URL, as an ES module, goes through it again.
  const plain = typeof resolved.url === 'string' ? resolved.url.replace(/(%3F|\?)tsx-.*$/, '') : resolved.url;
  if (outsideTool(plain) && /\.m?ts$/.test(plain) && packageType(plain) === undefined) {
    return { ...resolved, url: plain, format: 'module' };
  }
  return resolved;
}

const typeOfDir = new Map();

/** The "type" field of the nearest package.json above a file, or undefined when none names one. */
function packageType(url) {
  let dir = dirname(fileURLToPath(url));
  const seen = [];
  for (;;) {
    if (typeOfDir.has(dir)) break;
    seen.push(dir);
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      let type;
      try {
        type = JSON.parse(readFileSync(pkg, 'utf8')).type;
      } catch {
        type = undefined; // an unreadable package.json names no type
      }
      typeOfDir.set(dir, type);
      break;
    }
    const up = dirname(dir);
    if (up === dir) {
      typeOfDir.set(dir, undefined);
      break;
    }
    dir = up;
  }
  const type = typeOfDir.get(dir);
  for (const d of seen) typeOfDir.set(d, type);
  return type;
}
