import FilterHost
print("meshd")
