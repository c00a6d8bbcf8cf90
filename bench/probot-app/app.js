// A no-op Probot app for bench/intake.py: Probot verifies each delivery's signature,
// parses it and dispatches to this handler, which does nothing and stores nothing.
export default (app) => {
  app.onAny(async () => {});
};
