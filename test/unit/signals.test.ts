import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { handleSignals } from '../../src/cli/signals.js';

describe('signal handling', () => {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    it(`${signal} aborts the run and says so`, () => {
      const proc = new EventEmitter();
      const controller = new AbortController();
      const said: string[] = [];
      const release = handleSignals(proc as unknown as NodeJS.Process, controller, (s) => said.push(s));
      expect(controller.signal.aborted).to.equal(false);
      proc.emit(signal, signal);
      expect(controller.signal.aborted).to.equal(true);
      expect(said).to.deep.equal([signal]);
      release();
      expect(proc.listenerCount('SIGINT') + proc.listenerCount('SIGTERM')).to.equal(0);
    });
  }
});
