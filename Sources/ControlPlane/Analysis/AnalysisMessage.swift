#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MeshAPI

/// A kind of analysis message: Istio's (code, name, level and text from istio/istio
/// `pkg/config/analysis/msg/messages.yaml`) or meshd's own (`MSH` codes) for what only
/// meshd has to say: fields it does not enforce, kinds it skips, sidecars registering at runtime.
public struct AnalysisMessage: Sendable, Hashable {
    public enum Level: String, Sendable, Hashable, Comparable, CaseIterable {
        case error = "Error", warning = "Warning", info = "Info"

        private var rank: Int { self == .error ? 0 : self == .warning ? 1 : 2 }
        /// Worse first: `.error < .warning`.
        public static func < (a: Level, b: Level) -> Bool { a.rank < b.rank }

        /// istioctl's threshold names, in any case: `Info`, `warning`, `ERROR`.
        public init?(threshold: String) {
            guard let l = Self.allCases.first(where: { $0.rawValue.lowercased() == threshold.lowercased() }) else { return nil }
            self = l
        }

        /// Whether a message of this level counts at `threshold` (istioctl's IsWorseThanOrEqualTo).
        public func isAtLeast(_ threshold: Level) -> Bool { self <= threshold }
    }

    public var code: String
    public var name: String
    public var level: Level
    public var description: String

    /// Istio's page for its own codes.
    public var documentationURL: String? {
        code.hasPrefix("IST") ? "https://istio.io/latest/docs/reference/config/analysis/\(code.lowercased())/" : nil
    }
}

extension AnalysisMessage {
    static func ist(_ code: Int, _ name: String, _ level: Level, _ description: String) -> AnalysisMessage {
        AnalysisMessage(code: "IST" + code.zeroPadded(4),
                        name: name, level: level, description: description)
    }

    static func msh(_ code: Int, _ name: String, _ level: Level, _ description: String) -> AnalysisMessage {
        AnalysisMessage(code: "MSH" + code.zeroPadded(4),
                        name: name, level: level, description: description)
    }

    public static let referencedResourceNotFound = ist(101, "ReferencedResourceNotFound", .error, "A resource being referenced does not exist.")
    public static let schemaValidationError = ist(106, "SchemaValidationError", .error, "The resource has a schema validation error.")
    public static let conflictingMeshGatewayVirtualServiceHosts = ist(109, "ConflictingMeshGatewayVirtualServiceHosts", .error,
        "Conflicting hosts on VirtualServices associated with mesh gateway")
    public static let conflictingSidecarWorkloadSelectors = ist(110, "ConflictingSidecarWorkloadSelectors", .error,
        "A Sidecar resource selects the same workloads as another Sidecar resource")
    public static let multipleSidecarsWithoutWorkloadSelectors = ist(111, "MultipleSidecarsWithoutWorkloadSelectors", .error,
        "More than one sidecar resource in a namespace has no workload selector")
    public static let virtualServiceDestinationPortSelectorRequired = ist(112, "VirtualServiceDestinationPortSelectorRequired", .error,
        "A VirtualService routes to a service with more than one port exposed, but does not specify which to use.")
    /// Retired from Istio's list (its analyzer went with the alpha authentication Policy); meshd keeps it.
    public static let mtlsPolicyConflict = ist(113, "MTLSPolicyConflict", .error,
        "A DestinationRule and Policy are in conflict with regards to mTLS.")
    public static let portNameIsNotUnderNamingConvention = ist(118, "PortNameIsNotUnderNamingConvention", .info,
        "Port name is not under naming convention. Protocol detection is applied to the port.")
    public static let noMatchingWorkloadsFound = ist(127, "NoMatchingWorkloadsFound", .warning,
        "There aren't workloads matching the resource labels")
    public static let noServerCertificateVerificationDestinationLevel = ist(128, "NoServerCertificateVerificationDestinationLevel", .warning,
        "No caCertificates are set in DestinationRule, this results in no verification of presented server certificate.")
    public static let noServerCertificateVerificationPortLevel = ist(129, "NoServerCertificateVerificationPortLevel", .warning,
        "No caCertificates are set in DestinationRule, this results in no verification of presented server certificate for traffic to a given port.")
    public static let virtualServiceUnreachableRule = ist(130, "VirtualServiceUnreachableRule", .warning,
        "A VirtualService rule will never be used because a previous rule uses the same match.")
    public static let virtualServiceIneffectiveMatch = ist(131, "VirtualServiceIneffectiveMatch", .info,
        "A VirtualService rule match duplicates a match in a previous rule.")
    public static let virtualServiceHostNotFoundInGateway = ist(132, "VirtualServiceHostNotFoundInGateway", .warning,
        "Host defined in VirtualService not found in Gateway.")
    public static let serviceEntryAddressesRequired = ist(134, "ServiceEntryAddressesRequired", .warning,
        "Virtual IP addresses are required for ports serving TCP (or unset) protocol when PILOT_ENABLE_IP_AUTOALLOCATE is not set on a proxy")
    public static let conflictingGateways = ist(145, "ConflictingGateways", .error,
        "Gateway should not have the same selector, port and matched hosts of server")
    public static let invalidGatewayCredential = ist(161, "InvalidGatewayCredential", .error,
        "The credential provided for the Gateway resource is invalid")
    public static let gatewayPortNotDefinedOnService = ist(162, "GatewayPortNotDefinedOnService", .warning,
        "Gateway port not exposed by service")
    public static let destinationRuleSubsetNotSelectPods = ist(173, "DestinationRuleSubsetNotSelectPods", .error,
        "Subset in DestinationRule does not select any Pods.")

    public static let unknownDestinationRuleHost = ist(174, "UnknownDestinationRuleHost", .warning,
        "Host defined in destination rule does not match any services in the mesh.")

    public static let duplicateResource = msh(1, "DuplicateResource", .warning,
        "A resource is defined more than once; the later definition is used.")
    public static let notEnforced = msh(2, "NotEnforced", .warning,
        "A field or value meshd accepts but does not enforce as Istio would.")
    public static let kindSkipped = msh(3, "KindSkipped", .warning, "A document of a kind meshd does not implement is skipped.")
    public static let unboundGateway = msh(4, "UnboundGateway", .warning, "No VirtualService binds this Gateway.")
    public static let subsetEndpointsFromSidecars = msh(5, "SubsetEndpointsFromSidecars", .info,
        "A subset's endpoints come from sidecars registering at runtime (meshd sidecar), not from the configuration.")
    public static let unsupportedExtension = msh(6, "UnsupportedExtension", .warning, "An extension meshd cannot run (Wasm) is ignored.")
    public static let unsupportedTarget = msh(7, "UnsupportedTarget", .info, "A plugin target kind meshd does not attach plugins to.")

    /// Every message `meshd analyze` can report, by code.
    public static let all: [AnalysisMessage] = [
        referencedResourceNotFound, schemaValidationError, conflictingMeshGatewayVirtualServiceHosts,
        conflictingSidecarWorkloadSelectors, multipleSidecarsWithoutWorkloadSelectors,
        virtualServiceDestinationPortSelectorRequired, mtlsPolicyConflict, portNameIsNotUnderNamingConvention,
        noMatchingWorkloadsFound, noServerCertificateVerificationDestinationLevel, noServerCertificateVerificationPortLevel,
        virtualServiceUnreachableRule, virtualServiceIneffectiveMatch, virtualServiceHostNotFoundInGateway,
        serviceEntryAddressesRequired, conflictingGateways, invalidGatewayCredential, gatewayPortNotDefinedOnService,
        destinationRuleSubsetNotSelectPods, unknownDestinationRuleHost,
        duplicateResource, notEnforced, kindSkipped, unboundGateway, subsetEndpointsFromSidecars, unsupportedExtension,
        unsupportedTarget,
    ]
}
