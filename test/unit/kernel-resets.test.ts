// parseTrace against tcp:tcp_send_reset lines as this kernel (6.18) prints them.
import { expect } from 'chai';
import { isTheLabs, parseTrace } from '../../src/capture/kernel-resets.js';

const line = (src: string, dest: string, state: string, reason: string) =>
  `            node-31985   [001] .N...  1720.784590: tcp_send_reset: skbaddr=0000000000000000 skaddr=000000005741375a src=${src} dest=${dest} state=${state} reason=${reason}`;

describe('parseTrace', () => {
  it('reads a no-socket RST (plain IPv4 addresses)', () => {
    const [r] = parseTrace(line('10.0.2.2:7', '10.0.1.2:48106', 'TCP_CLOSE', 'NO_SOCKET'), 0);
    expect(r).to.deep.include({ saddr: '10.0.2.2', sport: 7, daddr: '10.0.1.2', dport: 48106, state: 'CLOSE', reason: 'NO_SOCKET' });
  });

  it('reads a socket of a dual-stack listener (IPv4-mapped IPv6 in brackets) as IPv4', () => {
    const [r] = parseTrace(line('[::ffff:10.0.2.2]:8080', '[::ffff:10.0.1.2]:39046', 'TCP_CLOSE', 'TCP_STATE'), 0);
    expect(r).to.deep.include({ saddr: '10.0.2.2', sport: 8080, daddr: '10.0.1.2', dport: 39046, reason: 'TCP_STATE' });
  });

  it('reads a RST sent for a dual-stack listener (its own wildcard address)', () => {
    const [r] = parseTrace(line('[::]:8080', '[::]:0', 'TCP_LISTEN', 'INVALID_SYN'), 0);
    expect(r).to.deep.include({ socket: '000000005741375a', saddr: '::', sport: 8080, daddr: '::', dport: 0, state: 'LISTEN', reason: 'INVALID_SYN' });
  });
});

describe('isTheLabs: which events are a lab\'s', () => {
  const ports = { min: 33000, max: 33999 };
  const at = (time: number, e: { sport: number; dport: number; socket?: string }) => ({ time, ...e });
  it('keeps an event with one of its ports in the lab\'s range, either way', () => {
    expect(isTheLabs(at(10, { sport: 33001, dport: 5000 }), ports)).to.equal(true);
    expect(isTheLabs(at(10, { sport: 5000, dport: 33999 }), ports)).to.equal(true);
  });
  it('drops another lab\'s event (same addresses and listener, another range)', () => {
    expect(isTheLabs(at(10, { sport: 34001, dport: 5000 }), ports)).to.equal(false);
    expect(isTheLabs(at(10, { sport: 5000, dport: 32999 }), ports)).to.equal(false);
  });
  it('keeps a listener\'s event (no peer port) only from one of the lab\'s own listening sockets, while it was the lab\'s', () => {
    const listeners = new Map([['0000000015025335', [{ from: 100, to: 105 }, { from: 110 }]]]);
    const ours = (time: number, socket?: string) => isTheLabs(at(time, { sport: 8080, dport: 0, ...(socket ? { socket } : {}) }), ports, listeners);
    expect(ours(101, '0000000015025335')).to.equal(true);
    expect(ours(111, '0000000015025335'), 'reopened, still open').to.equal(true);
    expect(ours(101, '00000000deadbeef'), 'another socket').to.equal(false);
    expect(ours(101), 'no socket named').to.equal(false);
    // the same name before the lab's listener existed, or between its two lives: another
    // socket that had (or got) the same memory
    expect(ours(99, '0000000015025335')).to.equal(false);
    expect(ours(107, '0000000015025335')).to.equal(false);
  });
  it('keeps every listener\'s event where socket names cannot be compared (kptr_restrict)', () => {
    expect(isTheLabs(at(10, { sport: 8080, dport: 0, socket: '00000000deadbeef' }), ports)).to.equal(true);
  });
});
