/**
 * The import rules `npm run lint` checks (dependency-cruiser): the layout is the architecture, so
 * an import that runs backwards or closes a cycle is an error, not a style question.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'an import cycle: the files of a cycle cannot be read, tested or moved apart',
      from: {},
      to: { circular: true },
    },
    {
      name: 'models-import-only-the-contract',
      severity: 'error',
      comment:
        'machines/ and invariants/ see the explorer only through its model contract (explorer/model.ts), never conformance/, view/ or the command line',
      from: { path: '^(machines|invariants)/' },
      to: { path: '^(explorer|conformance|view|cli)/', pathNot: '^explorer/model\\.ts$' },
    },
    {
      name: 'explorer-is-below-its-users',
      severity: 'error',
      comment:
        'explorer/ is the core: conformance/, view/ and the command line use it, not the other way round',
      from: { path: '^explorer/', pathNot: '\\.(test|slow)\\.ts$' },
      to: { path: '^(conformance|view|cli)/' },
    },
    {
      name: 'the-command-line-is-on-top',
      severity: 'error',
      comment:
        'cli/ is the one place that puts explorer/, conformance/ and view/ together: nothing imports it but its entry points',
      from: { path: '^(explorer|conformance|view|machines|invariants)/', pathNot: '\\.(test|slow)\\.ts$' },
      to: { path: '^cli/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|out|view/client/dist)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.tsx', '.mjs', '.js'] },
  },
};
