// Preloaded into Azurite by devhost (`node --require`, devhost/azurite.py): Azurite must finish its shutdown.
//
// Azurite saves its metadata when it shuts down, on the first SIGTERM or SIGINT, with `once` listeners. When
// devhost dies the kernel sends Azurite its parent-death signal once per devhost thread that exits
// (PR_SET_PDEATHSIG follows the forking thread, and a dying process's children are handed from thread to
// thread), so a second SIGTERM used to arrive while Azurite was saving and kill it: the last seconds of writes
// were lost. These listeners keep that default action away; Azurite exits by itself once its shutdown is done,
// and at the latest 30 s after the first signal.
let shutdownStarted = false;
function onSignal() {
  if (!shutdownStarted) {
    shutdownStarted = true;
    setTimeout(() => process.exit(1), 30000).unref();
  }
}
process.on("SIGTERM", onSignal);
process.on("SIGINT", onSignal);
