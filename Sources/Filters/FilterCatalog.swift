import FilterHost
import Transport
import LuaRuntime
import MeshAPI

/// Every native filter, by the name a listener's `httpFilters` uses.
public enum FilterCatalog {
    public static let registry: FilterRegistry = {
        var r = FilterRegistry()
        r.register(HeaderMutationConfig.name, HeaderMutationFactory.build, perRoute: HeaderMutationFactory.parsePerRoute)
        r.register(CorsConfig.name, CorsFactory.build, perRoute: CorsFactory.parsePerRoute)
        r.register(FaultConfig.name, FaultFactory.build, perRoute: FaultFactory.parsePerRoute)
        r.register(JWTConfig.name, JWTFactory.build)
        r.register(RBACConfig.name, RBACFactory.build)
        r.register(LuaFilterFactory.name, LuaFilterFactory.build)
        r.register(IstioStatsFactory.name, IstioStatsFactory.build)
        r.register(network: IstioStatsFactory.name, IstioTCPStatsFactory.build)
        r.register(network: RBACConfig.name, RBACNetworkFactory.build)
        r.register(extension: LuaChainExtension(), named: LuaFilterFactory.name)
        return r
    }()
}
