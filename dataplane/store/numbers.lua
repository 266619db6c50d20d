-- numbers.lua: the number helpers admit.lua and settle.lua share. It is not a script of its own:
-- the store loads each script as this file followed by the script (redis.go), so both format
-- numbers with the same code.
-- num formats a whole number for Redis, exact any number exactly. glibc's '%.0f' and '%.17g' take
-- about a microsecond for a number as large as a time in µs (multi-precision arithmetic; an
-- admission formats about ten), '%d' a tenth of that. For an integer other than zero (-0 is "-0"
-- with them, "0" with '%d') that a 64-bit C long holds, which '%d' converts to, '%d' and '%.0f'
-- print the same digits, and so do '%d' and '%.17g' below 1e17 (17 digits at most: no exponent);
-- anything else (fractions, zero, infinities, NaN, a 32-bit long) takes the slow format.
-- TestLuaFormattersPrintWhatTheSlowFormatsPrint holds them to it.
-- Strings the script reads become numbers with (s + 0) rather than tonumber(s): the same
-- conversion, but tonumber is a function call that parses the string twice (an admission and its
-- settle convert about sixty; strtod was 8% of the server's instructions).
local fmt = string.format
local wide = fmt('%d', 2 ^ 53) == '9007199254740992'
local function num(x)
  if wide and x % 1 == 0 and x ~= 0 and x > -1e18 and x < 1e18 then return fmt('%d', x) end
  return fmt('%.0f', x)
end
local function exact(x)
  if wide and x % 1 == 0 and x ~= 0 and x > -1e17 and x < 1e17 then return fmt('%d', x) end
  return fmt('%.17g', x)
end
