-- wrk script for bench/intake.py: POST the same signed payload with a new delivery id each time.
-- Env: BENCH_BODY (payload file), BENCH_SIG (its X-Hub-Signature-256), BENCH_PATH, BENCH_RUN (unique per run).
local body = io.open(os.getenv("BENCH_BODY"), "rb"):read("*a")
local sig = os.getenv("BENCH_SIG")
local path = os.getenv("BENCH_PATH")
local run = os.getenv("BENCH_RUN")
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local n = 0
function request()
  n = n + 1
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "workflow_job",
    ["X-GitHub-Delivery"] = string.format("%s-%d-%d", run, tid, n),
    ["X-Hub-Signature-256"] = sig,
  }, body)
end
