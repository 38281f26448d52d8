import FilterHost

/// Every native filter, by the name a listener's `httpFilters` uses.
public enum FilterCatalog {
    public static let registry: FilterRegistry = {
        var r = FilterRegistry()
        r.register(HeaderMutationFilter.name, HeaderMutationFilter.Factory.build)
        r.register(LuaFilterFactory.name, LuaFilterFactory.build)
        return r
    }()
}
