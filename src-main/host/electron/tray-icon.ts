/** 32×32 tray icon (white "H" on blue), embedded so the packaged app needs no loose asset. */
export const TRAY_ICON_DATA_URL = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAYAAABzenr0AAAAQklEQVR42mNgGAWDCagmv/5PDzzqgFEHkOwAdECpulEHjDpg6DuAWDDqgOHrgNFcMOqAkeeA0RbRqAPo5oBRMBAAABKOX2KJ6ewPAAAAAElFTkSuQmCC';
