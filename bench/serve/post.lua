-- wrk script: POST the JSON body named by $BODY to every request; count non-200 answers.
local f = assert(io.open(os.getenv("BODY"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()
