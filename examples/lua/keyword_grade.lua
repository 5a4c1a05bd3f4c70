-- keyword_grade: scores an answer by the keywords it contains, and reports the score as the
-- attempt's quality, so that a policy's quality threshold can refuse a poor answer:
--
--   cbx exec --lua examples/lua/keyword_grade.lua keyword_grade \
--       --params-json '{"answer": "breakers open after failures", "keywords": ["open", "probe"]}'
--
-- It shows every hook: validate (at submission), before and after (around each attempt, on
-- the loop thread) and run (on the thread pool), sharing one state per attempt.

local started -- set by before, read by run and after: one attempt, one state

return executor {
  name = "keyword_grade",
  summary = "Scores an answer by the keywords it contains (quality = the share found)",
  params = {
    {name = "answer", type = "string", required = true, description = "the text to grade"},
    {name = "keywords", type = "array", items = "string", required = true, min = 1,
     description = "the words a good answer contains"},
    {name = "case_sensitive", type = "boolean", default = false},
  },

  validate = function(p)
    for i, k in ipairs(p.keywords) do
      if k == "" then
        return {keywords = "keyword " .. i .. " is empty"}
      end
    end
  end,

  before = function(p, ctx)
    started = os.clock()
  end,

  run = function(p, ctx)
    local text = p.case_sensitive and p.answer or p.answer:lower()
    local found, missing = array(), array()
    for _, k in ipairs(p.keywords) do
      local key = p.case_sensitive and k or k:lower()
      if text:find(key, 1, true) then
        found[#found + 1] = k
      else
        missing[#missing + 1] = k
      end
    end
    local score = #found / #p.keywords
    -- third value: metadata; its quality becomes the attempt's quality
    return {score = score, found = found, missing = missing}, nil, {quality = score}
  end,

  after = function(p, outputs, info)
    if outputs then
      outputs.cpu_seconds = os.clock() - started
      return outputs
    end
  end,
}
