-- analyze: the analysis step of examples/workflows/data_review.yaml, an executor type in Lua
-- (until the LLM executor runs it as an assistant call). It scores processed data and returns
-- analysis_results and confidence_score, which merge into the token's data.
--
--   cbx workflow run examples/workflows/data_review.yaml --lua examples/workflows/analyze.lua \
--       --token '{"input_file": "data.json", "records": 120}'

return executor {
  name = "analyze",
  summary = "Scores processed data: analysis results and a confidence score",
  params = {
    processed_output = {type = "string", required = true, description = "what processing made"},
    quality_score = {type = "number", required = true, min = 0, max = 1},
  },
  run = function(p)
    local words = 0
    for _ in p.processed_output:gmatch("%S+") do words = words + 1 end
    -- more evidence and better quality give more confidence
    local confidence = math.min(1, p.quality_score * (0.85 + math.min(words, 20) / 50))
    return {
      analysis_results = {words = words, summary = "analysed " .. words .. " words"},
      confidence_score = math.floor(confidence * 100 + 0.5) / 100,
    }
  end,
}
