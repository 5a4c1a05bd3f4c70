-- my_custom_executor: the custom executor of seed 002's guide ("Creating Custom Executors"),
-- written in Lua, so that the guide's flow (examples/flows/seed_flow.yaml) runs as written:
--
--   cbx run --lua examples/lua/my_custom_executor.lua examples/flows/seed_flow.yaml \
--       -i input_data="The quick brown fox"
--   cbx exec --lua examples/lua/my_custom_executor.lua my_custom_executor -p data="some text"
--
-- It "processes" the text the way the guide's placeholder does, with the options the flow
-- passes: mode basic (normalise spaces) or advanced (also count words and sentences), and a
-- quality of low, medium or high (how much it reports).

local modes = {basic = true, advanced = true}
local qualities = {low = 1, medium = 2, high = 3}

return executor {
  name = "my_custom_executor",
  summary = "Processes a text with the options of seed 002's custom executor",
  params = {
    data = {type = "string", required = true, description = "the data to process"},
    processing_options = {type = "object", default = {mode = "basic", quality = "medium"},
                          description = "{mode = basic|advanced, quality = low|medium|high}"},
  },

  validate = function(p)
    local o = p.processing_options
    if o.mode ~= nil and not modes[o.mode] then
      return {processing_options = "mode: expected basic or advanced, got " .. tostring(o.mode)}
    end
    if o.quality ~= nil and not qualities[o.quality] then
      return {processing_options = "quality: expected low, medium or high, got " ..
                                   tostring(o.quality)}
    end
  end,

  run = function(p, ctx)
    local o = p.processing_options
    local mode = o.mode or "basic"
    local level = qualities[o.quality or "medium"]
    local text = p.data:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
    local out = {result = text, mode = mode, processed = true}
    if mode == "advanced" then
      local words, sentences = 0, 0
      for _ in text:gmatch("%S+") do words = words + 1 end
      for _ in text:gmatch("[.!?]+") do sentences = sentences + 1 end
      out.words = words
      out.sentences = sentences
    end
    if level >= 2 then
      out.length = utf8.len(text) or #text
    end
    if level >= 3 then
      out.upper = text:upper()
    end
    return out, nil, {executor = "my_custom_executor", attempt = ctx.attempt}
  end,
}
