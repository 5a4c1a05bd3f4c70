-- word_count: an executor type written in Lua.
--
--   cbx exec --lua examples/lua/word_count.lua word_count -p text="the quick brown fox"
--   cbx types --lua examples/lua/word_count.lua word_count
--
-- The file runs in cbx's Lua sandbox (no io, os.execute, require or load), once when it is
-- loaded and again, in a fresh state, for every attempt.

return executor {
  name = "word_count",
  summary = "Counts the words of a text",
  params = {
    text = {type = "string", required = true, description = "the text"},
    min = {type = "integer", default = 0, min = 0,
           description = "count only words at least this many characters long"},
  },

  -- when the request is submitted: a table names the parameter at fault
  validate = function(p)
    if #p.text > 1e6 then
      return {text = "longer than 1,000,000 bytes"}
    end
  end,

  -- on the thread pool; return the outputs, or nil and an error message
  run = function(p)
    local n, longest = 0, ""
    for word in p.text:gmatch("%S+") do
      local len = utf8.len(word) or #word
      if len >= p.min then
        n = n + 1
        if len > (utf8.len(longest) or #longest) then
          longest = word
        end
      end
    end
    return {words = n, longest = longest}
  end,
}
