-- Rebuild the read documents of the given centers (after their records changed).
-- ARGV  prefix, center_id...
for i = 2, #ARGV do compose(ARGV[1], ARGV[i]) end
return #ARGV - 1
