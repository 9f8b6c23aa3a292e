-- wrk script for nginx/test-nginx.sh: counts the answers by status in each
-- thread, and prints at the end one "status CODE COUNT" line per status,
-- the number of requests and the socket errors.
local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	statuses = {}
end

function response(status, headers, body)
	statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
	local total = {}
	for _, t in ipairs(threads) do
		for status, n in pairs(t:get("statuses")) do
			total[status] = (total[status] or 0) + n
		end
	end
	for status, n in pairs(total) do
		io.write(string.format("status %d %d\n", status, n))
	end
	local e = summary.errors
	io.write(string.format("requests %d\n", summary.requests))
	io.write(string.format("socket_errors %d\n",
		e.connect + e.read + e.write + e.timeout))
end
