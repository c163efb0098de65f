// Ctrl-C and SIGTERM stop the run where it is; the runner's finally takes the lab down.
// The process is a parameter, so tests can send it signals of their own.

/** Abort on SIGINT/SIGTERM (exit code 130 after teardown); returns a function that removes the handlers. */
export function handleSignals(
  proc: Pick<NodeJS.Process, 'on' | 'off'>,
  controller: AbortController,
  say: (signal: string) => void,
): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    // A second Ctrl-C does not skip teardown: it only repeats that teardown is under way.
    say(signal);
    controller.abort(signal);
  };
  proc.on('SIGINT', onSignal);
  proc.on('SIGTERM', onSignal);
  return () => {
    proc.off('SIGINT', onSignal);
    proc.off('SIGTERM', onSignal);
  };
}
