/// A failed X.509 / key / CSR operation, with OpenSSL's reason.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    public let description: String

    package init(_ what: String) {
        description = "\(what): \(OpenSSLErrorQueue.drain(or: "no OpenSSL detail"))"
    }

    package init(plain: String) { description = plain }
}
