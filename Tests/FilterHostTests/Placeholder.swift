import FilterHost
