-- Rebuild the read documents of the given facilities (after their records or links changed).
-- ARGV  prefix, facility_id...
for i = 2, #ARGV do compose(ARGV[1], ARGV[i]) end
return #ARGV - 1
