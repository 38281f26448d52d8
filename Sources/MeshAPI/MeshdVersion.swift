/// The version of this meshd build: what `meshd version` prints, what a proxy tells the control
/// plane it runs (Node.meshd_version) and what the control plane's /version reports.
public enum MeshdVersion {
    public static let current = "0.1.0"
}
