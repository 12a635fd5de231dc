/**
 * The command line's side of a distributed search (`explore --broker URL
 * --node I/N`): the options checked into a broker target, a node other than
 * 0 served until the coordinator ends the run, and a fault's partial report.
 */
import { InvalidArgumentError } from 'commander';
import { type BrokerTarget, checkBrokerUrl } from '../explorer/broker-link.ts';
import { print } from './output.ts';
import { EXIT } from '../explorer/exit-codes.ts';
import { dataBudget } from '../explorer/bfs.ts';
import { DistributedFault, formatFault, runName } from '../explorer/distributed-bfs.ts';
import { NodeHost } from '../explorer/distributed-node.ts';
import { ModelError, type ResolvedVariant } from '../explorer/model.ts';

/** `--node I/N`: this process is node I of N (0 coordinates). */
export function nodeOption(raw: string): { node: number; nodes: number } {
  const m = /^(\d+)\/(\d+)$/.exec(raw);
  const node = Number(m?.[1]);
  const nodes = Number(m?.[2]);
  if (!m || nodes < 1 || node >= nodes || nodes > 4096)
    throw new InvalidArgumentError(`--node must be I/N with 0 <= I < N <= 4096 (e.g. 0/3), got '${raw}'`);
  return { node, nodes };
}

/** The broker target the options give, or undefined without --broker. */
export function brokerTargetOf(
  o: { broker?: string; node?: { node: number; nodes: number }; run?: string },
  variant: ResolvedVariant,
): BrokerTarget | undefined {
  if (o.broker === undefined && o.node === undefined && o.run === undefined) return undefined;
  if (o.broker === undefined) throw new ModelError('--node and --run need --broker URL');
  if (o.node === undefined) throw new ModelError('--broker needs --node I/N (this process is node I of N)');
  return {
    url: checkBrokerUrl(o.broker),
    ...o.node,
    run: o.run ?? runName(variant, o.node.nodes),
  };
}

const log = (line: string) => process.stderr.write(`vfio-mc: ${line}\n`);

/** Node I > 0: serve a partition until the coordinator ends the run. */
export async function serveNode(
  variant: ResolvedVariant,
  target: BrokerTarget,
  memoryLimit: number | undefined,
): Promise<number> {
  if (variant.source === undefined)
    throw new ModelError(`model '${variant.modelId}': --broker needs a model loaded from a file`);
  const data = memoryLimit === undefined ? undefined : (dataBudget(memoryLimit) ?? 0) - 64 * 2 ** 20;
  const host = new NodeHost(variant, target, data, log);
  const stop = () => host.stop();
  process.once('SIGTERM', stop);
  try {
    const end = await host.run();
    if (end.fault) {
      log(`node ${target.node}/${target.nodes}: the run ended without a verdict: ${end.fault}`);
      return EXIT.incomplete;
    }
    log(`node ${target.node}/${target.nodes}: the run is complete (its report is node 0's)`);
    return EXIT.ok;
  } finally {
    process.off('SIGTERM', stop);
  }
}

export const brokerLog = log;

/** A distributed search that stopped on a fault: its partial report, and exit code 4 (cut short, no verdict). */
export function faultExit(e: unknown, json: boolean): number | undefined {
  if (!(e instanceof DistributedFault)) return undefined;
  if (json) print(JSON.stringify({ complete: false, fault: e.report }, null, 2));
  process.stderr.write(`${formatFault(e.report)}\n`);
  return EXIT.incomplete;
}
