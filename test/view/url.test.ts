import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatEvent } from '../../explorer/report-text.ts';
import { AddressError, eventToken, formatAddress, parseAddress, tokenType } from '../../view/shared/url.ts';

describe('addresses', () => {
  it('name events as the reports do, and read back what they wrote', () => {
    expect(eventToken({ type: 'VmmMapDma', dma: 0 })).toBe('VmmMapDma(dma=0)');
    expect(eventToken({ type: 'VmmUnmapVaddr', range: 'all' })).toBe('VmmUnmapVaddr(range=all)');
    expect(eventToken({ type: 'VmmCloseDevice' })).toBe(formatEvent({ type: 'VmmCloseDevice' }));
    expect(tokenType('VmmMapDma(dma=0)')).toBe('VmmMapDma');
    const a = {
      model: 'container',
      variant: 'vfio-wait',
      path: ['VmmMapDma(dma=0)', 'VmmCloseDevice'],
      at: 1,
      cx: 'deadlock',
      set: 'dmas=2',
    };
    const url = formatAddress(a);
    expect(url).toBe('/container/vfio-wait/VmmMapDma(dma=0)/VmmCloseDevice?at=1&cx=deadlock&set=dmas%3D2');
    const u = new URL(url, 'http://h');
    expect(parseAddress(u.pathname, u.search)).toEqual(a);
  });

  it('round-trip any event arguments, strings with slashes, spaces and quotes included', () => {
    const arg = fc.oneof(fc.integer(), fc.boolean(), fc.string(), fc.constant(null));
    fc.assert(
      fc.property(
        fc.array(fc.dictionary(fc.stringMatching(/^[a-z]{1,4}$/), arg), { maxLength: 4 }),
        (args) => {
          const path = args.map((x) => eventToken({ type: 'Ev', ...x }));
          const u = new URL(formatAddress({ model: 'm', variant: 'v', path }), 'http://h');
          expect(parseAddress(u.pathname, u.search).path).toEqual(path);
        },
      ),
    );
  });

  it('say what is wrong with one that cannot be read', () => {
    expect(() => parseAddress('/', '')).toThrow(new AddressError('the address names no model'));
    expect(() => parseAddress('/m', '')).toThrow("the address names model 'm' but no variant");
    expect(() => parseAddress('/m/v/%zz', '')).toThrow(
      "part 3 of the address, '%zz', is not valid percent-encoding",
    );
    expect(() => parseAddress('/m/v/', '?at=-1')).toThrow('at=-1: a step number, from 0 on');
  });
});
